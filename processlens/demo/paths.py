"""Case decisions -> activity sequences, built once per distinct combination and expanded with numpy."""

from __future__ import annotations

import numpy as np

from processlens.demo import spec as s

# Exception modes (address and payment).
NONE, HANDLED, CONTINUED, STOPPED = 0, 1, 2, 3

DECISIONS = ["rejected", "skip_cc", "rework", "addr", "pay", "pay_failures", "dup_invoice", "wrong_order", "stuck_at"]
#: bits per decision in the packed combination key
_BITS = {"rejected": 1, "skip_cc": 1, "rework": 2, "addr": 2, "pay": 2, "pay_failures": 2, "dup_invoice": 1,
         "wrong_order": 1, "stuck_at": 5}


def sequence(d: dict[str, int]) -> list[int]:
    """The activities of one case, in order, for its decisions."""
    seq = [s.CREATE_ORDER]
    if not d["skip_cc"]:
        seq.append(s.CHECK_CREDIT)
    if d["rejected"]:
        return [*seq, s.REJECT_ORDER]
    seq.append(s.APPROVE_ORDER)
    seq += [s.PICK_GOODS, s.PACK_GOODS] * (1 + d["rework"])
    addr = d["addr"]
    if addr == HANDLED:
        seq += [s.ADDRESS_INVALID, s.CORRECT_ADDRESS]
    elif addr == CONTINUED:
        seq.append(s.ADDRESS_INVALID)
    elif addr == STOPPED:
        return [*seq, s.ADDRESS_INVALID]
    invoice = [s.CREATE_INVOICE, s.CREATE_INVOICE] if d["dup_invoice"] else [s.CREATE_INVOICE]
    seq += [*invoice, s.SHIP_GOODS] if d["wrong_order"] else [s.SHIP_GOODS, *invoice]
    pay = d["pay"]
    if pay == HANDLED:
        seq += [s.PAYMENT_FAILED, s.RETRY_PAYMENT] * max(1, d["pay_failures"])
    elif pay == CONTINUED:
        seq.append(s.PAYMENT_FAILED)
    elif pay == STOPPED:
        return [*seq, s.PAYMENT_FAILED]
    seq += [s.PAYMENT_RECEIVED, s.CLOSE_ORDER]
    stuck_at = d["stuck_at"]
    if stuck_at >= 0 and stuck_at in seq:
        seq = seq[: seq.index(stuck_at)]
    return seq


def pack(cols: dict[str, np.ndarray]) -> np.ndarray:
    """One int64 key per case from its decision columns (``stuck_at`` stored +1)."""
    key = np.zeros(len(cols["rejected"]), dtype=np.int64)
    shift = 0
    for name in DECISIONS:
        v = cols[name].astype(np.int64) + (1 if name == "stuck_at" else 0)
        key |= v << shift
        shift += _BITS[name]
    return key


def unpack(key: int) -> dict[str, int]:
    out, shift = {}, 0
    for name in DECISIONS:
        v = (key >> shift) & ((1 << _BITS[name]) - 1)
        out[name] = v - 1 if name == "stuck_at" else v
        shift += _BITS[name]
    return out


def expand(cols: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat (row, position, activity) arrays for the given cases, sorted by row then position."""
    keys = pack(cols)
    uniq, inverse = np.unique(keys, return_inverse=True)
    seqs = [sequence(unpack(int(k))) for k in uniq]
    lmax = max(len(q) for q in seqs)
    mat = np.full((len(uniq), lmax), -1, dtype=np.int8)
    for i, q in enumerate(seqs):
        mat[i, : len(q)] = q
    lengths = np.array([len(q) for q in seqs], dtype=np.int64)[inverse]
    row = np.repeat(np.arange(len(keys), dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(len(row), dtype=np.int64) - starts[row]
    act = mat[inverse[row], pos]
    return row, pos, act
