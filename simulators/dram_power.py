"""DRAMPower-style energy from datasheet IDD currents and command counts.

The classic current-subtraction model (Chandrasekar et al., DRAMPower): each command costs the
current it draws above the standby current it replaces, for as long as it lasts; background
energy is active standby (IDD3N) while any bank of a rank is open or refreshing and precharged
standby (IDD2N) otherwise. Per device, times the devices of a rank:

- ACT:  VDD (IDD0 - IDD3N) tRAS + VPP (IPP0 - IPP3N) tRAS
- PRE:  VDD (IDD0 - IDD2N) tRP                      (explicit, auto or all-bank precharge)
- RD:   VDD (IDD4R - IDD3N) BL/2 tCK;  WR: VDD (IDD4W - IDD3N) BL/2 tCK
- REF:  VDD (IDD5B - IDD3N) tRFC + VPP (IPP5B - IPP3N) tRFC   (per-bank refresh: 1/banks of it)
- background: VDD (IDD3N t_active + IDD2N t_precharged) + VPP IPP3N t_total

Not modelled: power-down and self-refresh (the controller never enters them), I/O and
termination power, DLL/ODT effects.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlsysgym.simulators.dram_timing import DramDevice


@dataclass(frozen=True)
class CommandCounts:
    """What a simulation did, summed over ranks (times in cycles, active time summed per rank)."""

    activates: int
    precharges: int
    reads: int
    writes: int
    refreshes: int  # all-bank REF commands (one per rank refreshed)
    bank_refreshes: int  # per-bank REF commands
    total_cycles: int  # simulated time
    active_cycles: int  # sum over ranks of cycles with at least one bank open or refreshing


@dataclass(frozen=True)
class EnergyBreakdown:
    """Energy per component in nJ, and the average power over the simulated time in mW."""

    act_nj: float
    pre_nj: float
    read_nj: float
    write_nj: float
    refresh_nj: float
    background_nj: float
    total_nj: float
    power_mw: float


def dram_energy(counts: CommandCounts, device: DramDevice) -> EnergyBreakdown:
    """Energy of a run from its command counts and the device's IDD currents (pJ = mA V ns)."""
    cur = device.currents
    if cur is None:
        raise ValueError(f"device {device.name!r} has no IDD currents; give DramCurrents")
    t = device.timing
    tck = t.tck_ns
    ndev = device.org.devices_per_rank
    ranks = device.org.channels * device.org.ranks
    e_act = cur.VDD * (cur.IDD0 - cur.IDD3N) * t.tRAS * tck + cur.VPP * (cur.IPP0 - cur.IPP3N) * t.tRAS * tck
    e_pre = cur.VDD * (cur.IDD0 - cur.IDD2N) * t.tRP * tck
    e_rd = cur.VDD * (cur.IDD4R - cur.IDD3N) * t.burst_cycles * tck
    e_wr = cur.VDD * (cur.IDD4W - cur.IDD3N) * t.burst_cycles * tck
    e_ref = (cur.VDD * (cur.IDD5B - cur.IDD3N) + cur.VPP * (cur.IPP5B - cur.IPP3N)) * t.tRFC * tck
    e_refpb = e_ref / device.org.banks_per_rank
    total_ns = counts.total_cycles * tck
    active_ns = counts.active_cycles * tck
    precharged_ns = max(total_ns * ranks - active_ns, 0.0)
    bg = cur.VDD * (cur.IDD3N * active_ns + cur.IDD2N * precharged_ns) + cur.VPP * cur.IPP3N * total_ns * ranks
    pj = ndev * 1e-3  # per-device pJ -> per-rank nJ
    parts = {
        "act_nj": counts.activates * e_act * pj,
        "pre_nj": counts.precharges * e_pre * pj,
        "read_nj": counts.reads * e_rd * pj,
        "write_nj": counts.writes * e_wr * pj,
        "refresh_nj": (counts.refreshes * e_ref + counts.bank_refreshes * e_refpb) * pj,
        "background_nj": bg * pj,
    }
    total = sum(parts.values())
    power = total / total_ns * 1e3 if total_ns > 0 else 0.0  # nJ/ns = W -> mW
    return EnergyBreakdown(**parts, total_nj=total, power_mw=power)
