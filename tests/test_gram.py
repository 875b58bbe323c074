"""Segment Gram slices and the weighted combination."""

from __future__ import annotations

import torch

from gradvac_ds.gram import Segment, accumulate_gram, combine_segments, merge_segments


def test_merge_sorts_and_fuses():
    segs = [Segment(5, 9, 1), Segment(0, 3, 0), Segment(3, 5, 0), Segment(9, 9, 2), Segment(9, 12, 1)]
    assert merge_segments(segs) == [Segment(0, 5, 0), Segment(5, 12, 1)]
    scaled = [Segment(0, 3, 0), Segment(3, 5, 0, 0.5)]
    assert merge_segments(scaled) == scaled


def test_gram_and_combine_match_dense():
    gen = torch.Generator().manual_seed(0)
    buf = torch.randn(3, 12, generator=gen)
    segs = [Segment(0, 4, 1), Segment(4, 6, 0), Segment(7, 12, 1, 0.25)]  # element 6 is padding
    gram = accumulate_gram(torch.zeros(2, 3, 3, dtype=torch.float64), buf, segs)
    a, b = buf[:, 0:4].double(), buf[:, 7:12].double()
    torch.testing.assert_close(gram[1], a @ a.T + 0.25 * b @ b.T)
    torch.testing.assert_close(gram[0], buf[:, 4:6].double() @ buf[:, 4:6].double().T)
    w = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]], dtype=torch.float64)
    out = combine_segments(buf, segs, w, torch.full((12,), 7.0))
    torch.testing.assert_close(out[4:6], (w[0].float() @ buf[:, 4:6]))
    torch.testing.assert_close(out[7:], (w[1].float() @ buf[:, 7:]))
    assert out[6] == 0


def test_bf16_buffer_accumulates_in_float64():
    buf = torch.randn(2, 64, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    gram = accumulate_gram(torch.zeros(1, 2, 2, dtype=torch.float64), buf, [Segment(0, 64, 0)])
    exact = buf.double() @ buf.double().T
    torch.testing.assert_close(gram[0], exact, rtol=1e-12, atol=1e-12)


def test_chunked_segments_equal_one_block(monkeypatch):
    import gradvac_ds.gram as gram_module

    buf = torch.randn(3, 50, generator=torch.Generator().manual_seed(2))
    segs = [Segment(0, 37, 0), Segment(37, 50, 1, 0.5)]
    w = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]], dtype=torch.float64)
    whole = accumulate_gram(torch.zeros(2, 3, 3, dtype=torch.float64), buf, segs)
    combined = combine_segments(buf, segs, w, torch.empty(50))
    monkeypatch.setattr(gram_module, "CHUNK_ELEMENTS", 3 * 4)  # 4 columns per chunk
    torch.testing.assert_close(accumulate_gram(torch.zeros(2, 3, 3, dtype=torch.float64), buf, segs), whole)
    torch.testing.assert_close(combine_segments(buf, segs, w, torch.empty(50)), combined)


def test_combine_into_a_row_of_its_own_buffer(monkeypatch):
    """The engine combines into a task row: the last input row itself, or a free row after them."""
    import gradvac_ds.gram as gram_module

    monkeypatch.setattr(gram_module, "COMBINE_BLOCK", 3 * 4)  # blocks of 4 columns: 13 of them
    buf = torch.randn(4, 50, generator=torch.Generator().manual_seed(5))
    segs = [Segment(0, 20, 0), Segment(22, 50, 1, 0.5)]  # elements 20 and 21 are padding
    w = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]], dtype=torch.float64)
    expected = combine_segments(buf[:3], segs, w, torch.full((50,), 7.0))
    free = buf.clone()
    assert combine_segments(free[:3], segs, w, free[3]) is not None
    torch.testing.assert_close(free[3], expected, rtol=0, atol=0)
    torch.testing.assert_close(free[:3], buf[:3], rtol=0, atol=0)
    last = buf.clone()
    combine_segments(last[:3], segs, w, last[2])
    torch.testing.assert_close(last[2], expected, rtol=0, atol=0)
    assert (last[2, 20:22] == 0).all()
    torch.testing.assert_close(last[:2], buf[:2], rtol=0, atol=0)


def test_bf16_rows_combine_into_their_own_row_in_uneven_blocks(monkeypatch):
    """bf16 task rows, upcast a block at a time into one reused float32 scratch: blocks of 5
    columns over segments of 23 and 27 leave short last blocks, which must read only their own
    columns of the scratch."""
    import gradvac_ds.gram as gram_module

    monkeypatch.setattr(gram_module, "COMBINE_BLOCK", 3 * 5)
    buf = torch.randn(3, 52, generator=torch.Generator().manual_seed(7)).to(torch.bfloat16)
    segs = [Segment(0, 23, 0), Segment(25, 52, 1)]
    w = torch.tensor([[0.5, 1.0, -1.5], [2.0, 0.0, 1.0]], dtype=torch.float64)
    dense = torch.zeros(52, dtype=torch.float64)
    for seg in segs:
        dense[seg.start : seg.stop] = w[seg.group] @ buf[:, seg.start : seg.stop].double()
    row = buf.clone()
    combine_segments(row, segs, w, row[2])
    torch.testing.assert_close(row[2], dense.to(torch.bfloat16), rtol=0, atol=0)
    assert (row[2, 23:25] == 0).all()


def test_combination_blocks_share_one_scratch(monkeypatch):
    """However many blocks, the in-row combination computes every block's GEMV into one scratch
    allocated per call (a temporary per block page-faults anew under glibc's mmap of large
    blocks): each ``torch.mv`` gets an ``out`` in the same storage."""
    import gradvac_ds.gram as gram_module

    monkeypatch.setattr(gram_module, "COMBINE_BLOCK", 3 * 4)  # 13 blocks of 4 columns
    buf = torch.randn(3, 50, generator=torch.Generator().manual_seed(8))
    expected = torch.tensor([1.0, 2.0, 3.0]) @ buf
    outs = []
    real_mv = torch.mv

    def recording_mv(matrix, vector, *, out=None):
        outs.append(out)
        return real_mv(matrix, vector, out=out)

    monkeypatch.setattr(gram_module.torch, "mv", recording_mv)
    combine_segments(buf, [Segment(0, 50, 0)], torch.tensor([[1.0, 2.0, 3.0]]), buf[2])
    assert len(outs) == 13 and all(out is not None for out in outs)
    assert len({out.untyped_storage().data_ptr() for out in outs}) == 1
    torch.testing.assert_close(buf[2], expected)


def cosine(gram: torch.Tensor) -> torch.Tensor:
    norms = gram.diagonal(dim1=1, dim2=2).sqrt()
    return gram / norms.unsqueeze(2) / norms.unsqueeze(1)


def test_float32_gram_matches_float64_cosines():
    gen = torch.Generator().manual_seed(3)
    buf = (0.5 * torch.randn(20_000, generator=gen) + torch.randn(5, 20_000, generator=gen)) * torch.logspace(
        -3, 0, 20_000
    )
    segs = [Segment(0, 12_345, 0), Segment(12_345, 20_000, 1, 0.5)]
    exact = accumulate_gram(torch.zeros(2, 5, 5, dtype=torch.float64), buf, segs)
    blocked = accumulate_gram(torch.zeros(2, 5, 5, dtype=torch.float64), buf, segs, torch.float32)
    assert (cosine(blocked) - cosine(exact)).abs().max() < 1e-6
    assert (cosine(blocked) - cosine(exact)).abs().max() > 0  # it is a float32 computation


def test_float32_gram_falls_back_to_float64_outside_float32_range():
    gen = torch.Generator().manual_seed(4)
    base = torch.randn(3, 5000, generator=gen)
    segs = [Segment(0, 2500, 0), Segment(2500, 5000, 1)]
    for scale in (1e25, 1e-25):  # squares overflow / underflow float32
        buf = base.clone()
        buf[:, :2500] *= scale  # group 0 out of range, group 1 not
        exact = accumulate_gram(torch.zeros(2, 3, 3, dtype=torch.float64), buf, segs)
        blocked = accumulate_gram(torch.zeros(2, 3, 3, dtype=torch.float64), buf, segs, torch.float32)
        assert torch.isfinite(blocked).all() and (blocked[0].diagonal() > 0).all()
        torch.testing.assert_close(blocked, exact, rtol=1e-5, atol=0.0)
    poisoned = base.clone()
    poisoned[1, 7] = float("inf")
    blocked = accumulate_gram(torch.zeros(2, 3, 3, dtype=torch.float64), poisoned, segs, torch.float32)
    assert not torch.isfinite(blocked[0]).all() and torch.isfinite(blocked[1]).all()
