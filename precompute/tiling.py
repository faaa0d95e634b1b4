"""Where a painting's image tokens lie on the canvas: one grid, or several (tiled models).

Qwen-VL families put every image token on one merged grid, in raster order. Tiled families
(InternVL: the canvas cut into 448-px tiles, each its own 16x16 grid of tokens, then a
thumbnail of the whole canvas; LLaVA-OneVision: a base image of the whole canvas, then its
384-px crops as one grid with a newline token after each row) put the image tokens on several
grids, one after the other.
A `Tiling` says, in image-token order, which grid each run of tokens fills and where that grid
sits on the painting's one composite grid (the grid tamscope stores: `grid` of the record).

TAM treats several grids as the authors' multi-image path does (xmed-lab/TAM `tam.py`,
`multimodal_process` with a list of vision shapes): ECI and the joint min-max normalisation over
all image tokens at once, then the rank Gaussian filter on each grid on its own (a tile's border
is reflected, never blended with its neighbour's), then 8 bits. `place` then puts each tile's
cells at its raster position on the composite grid. A grid with no position (InternVL's
thumbnail) takes part in ECI and the normalisation, as in their path, and is not stored: the
composite grid has no room for a second, coarser copy of the whole canvas (docs/tam.md). Tokens
that end each row of a grid (`row_end`: LLaVA-OneVision's `image_newline`) take part in ECI and
the normalisation too, and lie on no grid: the filter never sees them, nothing stores them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    h: int  # rows of tokens
    w: int  # columns of tokens
    top: int | None  # first row on the composite grid; None: not placed (a thumbnail)
    left: int | None
    row_end: int = 0  # tokens after each row that lie on no grid (LLaVA-OneVision's newline: 1)

    @property
    def n_tokens(self) -> int:
        return self.h * (self.w + self.row_end)


@dataclass(frozen=True)
class Tiling:
    grid: tuple[int, int]  # (gh, gw): the composite grid
    tiles: tuple[Tile, ...]  # in image-token order

    @property
    def n_tokens(self) -> int:
        return sum(t.n_tokens for t in self.tiles)

    def check(self) -> None:
        """Placed tiles must cover the composite grid exactly once."""
        gh, gw = self.grid
        if gh < 1 or gw < 1 or any(t.h < 1 or t.w < 1 or t.row_end < 0 for t in self.tiles):
            raise ValueError(f"empty grid or tile in {self}")
        cover = np.zeros((gh, gw), np.int64)
        for t in self.tiles:
            if t.top is None:
                continue
            if t.top < 0 or t.left < 0 or t.top + t.h > gh or t.left + t.w > gw:
                raise ValueError(f"tile {t} lies outside the {gh}x{gw} grid")
            cover[t.top:t.top + t.h, t.left:t.left + t.w] += 1
        if not (cover == 1).all():
            raise ValueError(f"the placed tiles do not cover the {gh}x{gw} grid exactly once")


def single(gh: int, gw: int) -> Tiling:
    """One grid holding every image token (the Qwen-VL families)."""
    return Tiling((gh, gw), (Tile(gh, gw, 0, 0),))


def tile_grid(cols: int, rows: int, side: int, thumbnail: bool) -> Tiling:
    """cols x rows tiles of side x side tokens in raster order (left to right, then down), then
    an unplaced thumbnail of side x side tokens when `thumbnail`."""
    tiles = [Tile(side, side, (i // cols) * side, (i % cols) * side) for i in range(cols * rows)]
    if thumbnail:
        tiles.append(Tile(side, side, None, None))
    return Tiling((rows * side, cols * side), tuple(tiles))


def base_and_crops(base: int, cols: int, rows: int, side: int) -> Tiling:
    """LLaVA-OneVision's AnyRes layout: an unplaced base image of base x base tokens, then the
    cols x rows crops of side x side tokens as ONE grid of (rows*side, cols*side) in raster
    order over the whole canvas (not crop by crop), each of its rows followed by a newline token."""
    grid = (rows * side, cols * side)
    return Tiling(grid, (Tile(base, base, None, None), Tile(*grid, 0, 0, row_end=1)))


def per_tile(values, tiling: Tiling, fn=None):
    """values (B, N) in image-token order -> (B, gh, gw) on the composite grid: each tile's run of
    tokens reshaped to its grid (the tokens ending each row, `row_end`, dropped), passed through
    `fn` ((B, h, w) -> (B, h, w), e.g. the rank filter; None: unchanged) and written at its place.
    Unplaced tiles are dropped (`fn` never sees them). Works on torch tensors and numpy arrays."""
    b, n = values.shape
    if n != tiling.n_tokens:
        raise ValueError(f"{n} image tokens for a tiling of {tiling.n_tokens}")
    gh, gw = tiling.grid
    if len(tiling.tiles) == 1 and tiling.tiles[0].top == 0 and not tiling.tiles[0].row_end:  # one grid: no copy
        grid = values.reshape(b, gh, gw)
        return fn(grid) if fn is not None else grid
    out = values.new_zeros((b, gh, gw)) if hasattr(values, "new_zeros") else np.zeros((b, gh, gw), values.dtype)
    start = 0
    for t in tiling.tiles:
        part = values[:, start:start + t.n_tokens].reshape(b, t.h, t.w + t.row_end)[:, :, :t.w]
        start += t.n_tokens
        if t.top is None:
            continue
        out[:, t.top:t.top + t.h, t.left:t.left + t.w] = fn(part) if fn is not None else part
    return out
