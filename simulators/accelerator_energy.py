"""Energy-per-access and area tables of the analytical accelerator model (45 nm CMOS).

Sources (numbers are the published ones; the interpolation and the PE composition are ours):

- Energy, [H14]: M. Horowitz, "Computing's energy problem (and what we can do about it)",
  ISSCC 2014, slide "Rough energy costs for various operations, 45 nm, 0.9 V":
  8b int add 0.03 pJ, 8b int mult 0.2 pJ; 16b FP add 0.4 pJ, 16b FP mult 1.1 pJ;
  32b FP add 0.9 pJ, 32b FP mult 3.7 pJ; 64-bit SRAM read 10 pJ (8 KB), 20 pJ (32 KB),
  100 pJ (1 MB); 64-bit DRAM access 1.3-2.6 nJ (we take the midpoint, 1.95 nJ).
- Area, [H14] same talk, area slide (45 nm): 8b add 36 um^2, 8b mult 282 um^2;
  16b FP add 1360 um^2, 16b FP mult 1640 um^2; 32b FP add 4184 um^2, 32b FP mult 7700 um^2.
- Flip-flop area: NanGate FreePDK45 Open Cell Library, DFF_X1 = 4.522 um^2.
- SRAM bit cell: Intel 45 nm 6T cell 0.346 um^2 (K. Mistry et al., IEDM 2007); we assume a
  50 % array efficiency (decoders, sense amplifiers, wiring), i.e. 0.692 um^2 per bit.

Word sizes: 1 byte = 8-bit integer datapath, 2 bytes = FP16, 4 bytes = FP32.
Every function is vectorized: NumPy arrays in, arrays of the broadcast shape out.
"""

from __future__ import annotations

import numpy as np

#: Word sizes (bytes) the tables cover.
WORD_BYTES: tuple[int, ...] = (1, 2, 4)

# [H14] energy of one multiply and one add (pJ) per word size (index: 1, 2, 4 bytes).
_MULT_PJ = {1: 0.2, 2: 1.1, 4: 3.7}
_ADD_PJ = {1: 0.03, 2: 0.4, 4: 0.9}
# [H14] area of one multiplier and one adder (um^2).
_MULT_UM2 = {1: 282.0, 2: 1640.0, 4: 7700.0}
_ADD_UM2 = {1: 36.0, 2: 1360.0, 4: 4184.0}

DFF_UM2 = 4.522                    # NanGate FreePDK45 DFF_X1
SRAM_BIT_UM2 = 0.346 / 0.5         # Intel 45 nm 6T cell at 50 % array efficiency
PE_REGISTER_WORDS = 3              # operand-in, weight/operand, partial-sum registers per PE

# [H14] 64-bit SRAM read energy (pJ) against array size (KB); log-log interpolation between.
_SRAM_KB = np.array([8.0, 32.0, 1024.0])
_SRAM_PJ_PER_64B = np.array([10.0, 20.0, 100.0])
DRAM_PJ_PER_64B = 1950.0           # [H14] 1.3-2.6 nJ per 64-bit access, midpoint


def _by_word(table: dict[int, float], word_bytes: np.ndarray) -> np.ndarray:
    """Look ``word_bytes`` (1, 2 or 4) up in ``table``, elementwise."""
    wb = np.asarray(word_bytes)
    return np.where(wb == 1, table[1], np.where(wb == 2, table[2], table[4]))


def mac_energy_pj(word_bytes: np.ndarray) -> np.ndarray:
    """Energy of one multiply-accumulate (one mult + one add) at ``word_bytes`` [H14]."""
    return _by_word(_MULT_PJ, word_bytes) + _by_word(_ADD_PJ, word_bytes)


def vector_op_energy_pj(word_bytes: np.ndarray) -> np.ndarray:
    """Energy of one element-wise FLOP on the vector unit (costed as one add) [H14]."""
    return _by_word(_ADD_PJ, word_bytes)


def sram_energy_pj_per_word(size_kb: np.ndarray, word_bytes: np.ndarray) -> np.ndarray:
    """Energy of one word access to an SRAM of ``size_kb`` KB.

    [H14] 64-bit reads, interpolated linearly in log(size) vs log(energy) and extrapolated with
    the end slopes (so a larger buffer costs more per access), scaled by word_bytes / 8.
    """
    logk = np.log(np.maximum(np.asarray(size_kb, dtype=float), 1e-3))
    xs, ys = np.log(_SRAM_KB), np.log(_SRAM_PJ_PER_64B)
    lo = (ys[1] - ys[0]) / (xs[1] - xs[0])
    hi = (ys[2] - ys[1]) / (xs[2] - xs[1])
    logpj = np.where(logk < xs[0], ys[0] + lo * (logk - xs[0]),
                     np.where(logk > xs[2], ys[2] + hi * (logk - xs[2]),
                              np.interp(logk, xs, ys)))
    return np.exp(logpj) * np.asarray(word_bytes) / 8.0


def dram_energy_pj_per_word(word_bytes: np.ndarray) -> np.ndarray:
    """Energy of one word of off-chip DRAM traffic [H14], scaled from 64-bit accesses."""
    return DRAM_PJ_PER_64B * np.asarray(word_bytes) / 8.0


def pe_area_um2(word_bytes: np.ndarray) -> np.ndarray:
    """Area of one PE: a multiplier and an adder [H14] plus ``PE_REGISTER_WORDS`` word registers."""
    wb = np.asarray(word_bytes)
    return (_by_word(_MULT_UM2, wb) + _by_word(_ADD_UM2, wb)
            + PE_REGISTER_WORDS * 8 * wb * DFF_UM2)


def sram_area_mm2(size_kb: np.ndarray) -> np.ndarray:
    """Area of ``size_kb`` KB of SRAM: 8192 bits/KB at ``SRAM_BIT_UM2`` um^2 per bit."""
    return np.asarray(size_kb) * 8192.0 * SRAM_BIT_UM2 * 1e-6


def vector_unit_area_um2(lanes: np.ndarray, word_bytes: np.ndarray) -> np.ndarray:
    """Area of the vector unit: ``lanes`` adders plus ``lanes`` multipliers [H14]."""
    return np.asarray(lanes) * (_by_word(_MULT_UM2, word_bytes) + _by_word(_ADD_UM2, word_bytes))
