"""DDR4 device description: JEDEC timing set, organisation and IDD currents of one named part.

The default device is a Micron MT40A1G8 (8 Gb, 1 Gig x 8) DDR4-2400 in speed bin -083E
(CL-tRCD-tRP = 16-16-16 at tCK = 0.833 ns), eight devices on a 64-bit rank.

Sources (values typed in by hand; nothing copied from any simulator's configuration files):

- Micron, "8Gb: x4, x8, x16 DDR4 SDRAM" component data sheet (MT40A2G4 / MT40A1G8 /
  MT40A512M16, file 8gb_ddr4_dram.pdf): Table 1 "Key Timing Parameters" (-083E: 16-16-16,
  tRCD = tRP = 13.32 ns, tRC = 45.32 ns), the "DDR4-2400 speed bin" table (tRAS min 32 ns,
  CWL 12 with 1 tCK write preamble) and the "Electrical Characteristics and AC Timing
  Parameters" table (tCCD_S/L, tRRD_S/L and tFAW for 1 KB pages, tWR, tWTR_S/L, tRTP,
  tREFI, tRFC1 for 8 Gb). These AC values are the JEDEC JESD79-4 values for DDR4-2400.
- IDD/IPP currents: Micron module data sheet asf18c2gx72hz.pdf Rev. F 8/16, Table 15
  "DDR4 IDD Specifications and Conditions - 16GB (Die Revision B)", whose values "are for the
  MT40A1G8 DDR4 SDRAM only and are computed from values specified in the 8Gb (1 Gig x 8)
  component data sheet". That module has 18 devices (2 ranks x 9); its note 1 says one rank is
  in the listed IDD condition and the other in IDD2P (450 mA / 18 = 25 mA per device). Per
  device: IDD2N = 612/18 = 34, IDD3N = 774/18 = 43, IPP3N = 54/18 = 3; IDD0 = (657-225)/9 = 48,
  IDD4R = (1440-225)/9 = 135, IDD4W = (1332-225)/9 = 123, IDD5B = (2475-225)/9 = 250,
  IPP0 = (54-27)/9 = 3, IPP5B = (279-27)/9 = 28 (mA). VDD = 1.2 V, VPP = 2.5 V (nominal).

DDR4 has no per-bank refresh; ``tRFCpb`` is our assumption (tRFC1 / 2, by analogy with
LPDDR4's tRFCpb ~ tRFCab / 2) so that DRAMSys's ``RefreshPolicy=PerBank`` knob has a meaning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np


def ns_to_cycles(ns: float, tck_ns: float, min_cycles: int = 0) -> int:
    """JEDEC rounding: the smallest whole number of clocks covering ``ns`` (and ≥ ``min_cycles``)."""
    return max(int(min_cycles), math.ceil(ns / tck_ns - 0.025))


@dataclass(frozen=True)
class DramTiming:
    """JEDEC timing parameters in clock cycles of ``tck_ns`` (DDR: two data beats per cycle)."""

    tck_ns: float
    CL: int  # READ to first data (CAS latency)
    CWL: int  # WRITE to first data (CAS write latency)
    BL: int  # burst length in beats (data bus busy BL/2 cycles)
    tRCD: int  # ACT to READ/WRITE
    tRP: int  # PRE to ACT
    tRAS: int  # ACT to PRE
    tRC: int  # ACT to ACT, same bank
    tCCD_S: int  # column to column, different bank group
    tCCD_L: int  # column to column, same bank group
    tRRD_S: int  # ACT to ACT, different bank group
    tRRD_L: int  # ACT to ACT, same bank group
    tFAW: int  # window holding at most four ACTs per rank
    tWR: int  # end of write data to PRE
    tWTR_S: int  # end of write data to READ, different bank group
    tWTR_L: int  # end of write data to READ, same bank group
    tRTP: int  # READ to PRE
    tREFI: int  # average refresh interval (all-bank)
    tRFC: int  # all-bank refresh cycle time
    tRFCpb: int  # per-bank refresh cycle time (assumption for DDR4, see module docstring)
    tRTRS: int = 1  # rank-to-rank data-bus turnaround

    @property
    def burst_cycles(self) -> int:
        """Cycles a burst occupies the data bus (BL / 2)."""
        return self.BL // 2

    @property
    def tRTW(self) -> int:
        """READ to WRITE command spacing: RL + BL/2 - WL + 2 tCK (bus turnaround, 1 tCK preambles)."""
        return self.CL + self.burst_cycles - self.CWL + 2

    def as_ns(self) -> dict[str, float]:
        """Every parameter in nanoseconds (``tck_ns`` and ``BL`` unchanged)."""
        out: dict[str, float] = {}
        for k, v in asdict(self).items():
            out[k] = v if k in ("tck_ns", "BL") else round(v * self.tck_ns, 3)
        return out


@dataclass(frozen=True)
class DramOrganization:
    """How one channel is built: ranks of devices, bank groups, banks, rows and columns."""

    channels: int = 1
    ranks: int = 1
    bank_groups: int = 4
    banks_per_group: int = 4
    rows: int = 65536
    columns: int = 1024  # column addresses per row per device
    device_width: int = 8  # DQ bits per device (x8)
    bus_width: int = 64  # DQ bits per channel

    @property
    def devices_per_rank(self) -> int:
        """Devices side by side on the channel's data bus."""
        return self.bus_width // self.device_width

    @property
    def banks_per_rank(self) -> int:
        """Banks in one rank (bank groups x banks per group)."""
        return self.bank_groups * self.banks_per_group

    @property
    def total_banks(self) -> int:
        """Banks in the whole memory system."""
        return self.channels * self.ranks * self.banks_per_rank

    def bursts_per_row(self, burst_length: int) -> int:
        """Column bursts in one row (columns / BL)."""
        return self.columns // burst_length

    def burst_bytes(self, burst_length: int) -> int:
        """Bytes moved by one burst on the channel (bus bytes x BL)."""
        return self.bus_width // 8 * burst_length

    def capacity_bytes(self, burst_length: int) -> int:
        """Bytes addressable in the whole memory system."""
        return (self.channels * self.ranks * self.banks_per_rank * self.rows
                * self.bursts_per_row(burst_length) * self.burst_bytes(burst_length))


@dataclass(frozen=True)
class DramCurrents:
    """Datasheet IDD/IPP currents of one device (mA) and supply voltages (V)."""

    VDD: float
    VPP: float
    IDD0: float  # one bank ACT-PRE loop
    IDD2N: float  # precharge standby
    IDD3N: float  # active standby
    IDD4R: float  # burst read
    IDD4W: float  # burst write
    IDD5B: float  # burst refresh (1x)
    IPP0: float
    IPP3N: float
    IPP5B: float


@dataclass(frozen=True)
class DramDevice:
    """A named DRAM part: timing, organisation and currents, with the datasheet they come from."""

    name: str
    timing: DramTiming
    org: DramOrganization = field(default_factory=DramOrganization)
    currents: DramCurrents | None = None
    datasheet: str = ""

    @property
    def capacity_bytes(self) -> int:
        """Bytes addressable in the whole memory system."""
        return self.org.capacity_bytes(self.timing.BL)

    @property
    def burst_bytes(self) -> int:
        """Bytes moved per request (one burst)."""
        return self.org.burst_bytes(self.timing.BL)

    @property
    def peak_bandwidth_gbps(self) -> float:
        """Theoretical peak bandwidth of all channels in GB/s (bus bytes x 2 beats per tCK)."""
        return self.org.channels * self.org.bus_width / 8 * 2 / self.timing.tck_ns

    def with_org(self, **changes: int) -> DramDevice:
        """A copy with some organisation fields changed (e.g. ``channels=2``)."""
        org = DramOrganization(**{**asdict(self.org), **changes})
        return DramDevice(self.name, self.timing, org, self.currents, self.datasheet)


def _mt40a1g8_083e_timing() -> DramTiming:
    """DDR4-2400 -083E timing of the Micron MT40A1G8 (8 Gb, 1 KB page), in cycles."""
    tck = 1.0 / 1.2  # 0.833 ns: DDR4-2400 (2400 MT/s, 1200 MHz clock)
    c = lambda ns, nck=0: ns_to_cycles(ns, tck, nck)
    tRAS = c(32.0)
    tRP = c(13.32)
    return DramTiming(
        tck_ns=tck,
        CL=16, CWL=12, BL=8,
        tRCD=c(13.32), tRP=tRP, tRAS=tRAS, tRC=tRAS + tRP,
        tCCD_S=4, tCCD_L=c(5.0, 5),
        tRRD_S=c(3.3, 4), tRRD_L=c(4.9, 4),
        tFAW=c(21.0, 20),
        tWR=c(15.0),
        tWTR_S=c(2.5, 2), tWTR_L=c(7.5, 4),
        tRTP=c(7.5, 4),
        tREFI=c(7800.0),
        tRFC=c(350.0),
        tRFCpb=c(175.0),
    )


MT40A1G8_083E = DramDevice(
    name="Micron MT40A1G8-083E DDR4-2400 8Gb x8 (1 channel, 1 rank of 8 devices)",
    timing=_mt40a1g8_083e_timing(),
    org=DramOrganization(),
    currents=DramCurrents(
        VDD=1.2, VPP=2.5,
        IDD0=48.0, IDD2N=34.0, IDD3N=43.0, IDD4R=135.0, IDD4W=123.0, IDD5B=250.0,
        IPP0=3.0, IPP3N=3.0, IPP5B=28.0,
    ),
    datasheet=("Micron 8Gb x4/x8/x16 DDR4 SDRAM data sheet (8gb_ddr4_dram.pdf): Table 1 Key Timing "
               "Parameters, DDR4-2400 speed bin, AC timing table; IDD from Micron asf18c2gx72hz.pdf "
               "Rev. F 8/16 Table 15 (MT40A1G8 die Rev. B, DDR4-2400), per device"),
)
"""The default device of the DRAM simulator."""


MAPPING_FIELDS = ("channel", "rank", "bankgroup", "bank", "row", "column")


@dataclass(frozen=True)
class AddressMapping:
    """Physical byte address -> (channel, rank, bank group, bank, row, column) by bit fields.

    ``order`` names the fields from the most to the least significant bits, separated by ``:``;
    below them sit the byte-within-burst offset bits (every request moves one burst). The
    default ``row:rank:bank:column:bankgroup:channel`` puts consecutive bursts in successive
    bank groups (tCCD_S spacing, full bus rate for a stream) and keeps a 32 KB region in one
    row of each group. Every organisation dimension must be a power of two.
    """

    order: str = "row:rank:bank:column:bankgroup:channel"

    def fields(self) -> tuple[str, ...]:
        """Field names from the most to the least significant."""
        names = tuple(f.strip().lower() for f in self.order.split(":"))
        if sorted(names) != sorted(MAPPING_FIELDS):
            raise ValueError(f"address mapping {self.order!r} must name each of {':'.join(MAPPING_FIELDS)} once")
        return names

    def widths(self, org: DramOrganization, burst_length: int) -> dict[str, int]:
        """Bits per field (and ``offset`` for the byte within a burst)."""
        sizes = {
            "channel": org.channels, "rank": org.ranks, "bankgroup": org.bank_groups,
            "bank": org.banks_per_group, "row": org.rows, "column": org.bursts_per_row(burst_length),
            "offset": org.burst_bytes(burst_length),
        }
        out = {}
        for k, v in sizes.items():
            if v < 1 or v & (v - 1):
                raise ValueError(f"{k} count {v} is not a power of two; address mapping needs powers of two")
            out[k] = v.bit_length() - 1
        return out

    def shifts(self, org: DramOrganization, burst_length: int) -> dict[str, int]:
        """The lowest bit of every field."""
        w = self.widths(org, burst_length)
        shift = w["offset"]
        out = {"offset": 0}
        for name in reversed(self.fields()):
            out[name] = shift
            shift += w[name]
        return out

    def decode(self, addresses: object, org: DramOrganization, burst_length: int) -> dict[str, np.ndarray]:
        """Split byte addresses into one int64 array per field."""
        a = np.asarray(addresses).astype(np.uint64)
        w = self.widths(org, burst_length)
        s = self.shifts(org, burst_length)
        return {f: ((a >> np.uint64(s[f])) & np.uint64((1 << w[f]) - 1)).astype(np.int64) for f in self.fields()}

    def encode(self, fields: Mapping[str, object], org: DramOrganization, burst_length: int) -> np.ndarray:
        """Burst-aligned byte addresses (int64) from field arrays; missing fields are 0."""
        w = self.widths(org, burst_length)
        s = self.shifts(org, burst_length)
        out: np.ndarray | None = None
        for f in self.fields():
            if f in fields:
                v = (np.asarray(fields[f]).astype(np.uint64) & np.uint64((1 << w[f]) - 1)) << np.uint64(s[f])
                out = v if out is None else out | v
        if out is None:
            raise ValueError("AddressMapping.encode needs at least one field")
        return out.astype(np.int64)


DEFAULT_MAPPING = AddressMapping()
"""``row:rank:bank:column:bankgroup:channel``: the mapping used unless one is given."""
