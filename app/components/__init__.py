"""View helpers the pages share, one job per module: run pickers (common), cached loading (loading), dataset
picker and notices (datasets), the draw-or-upload input (image_input), image tiles (tile_grid)."""
