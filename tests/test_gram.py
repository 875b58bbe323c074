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
