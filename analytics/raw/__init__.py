"""The raw computation of every creator-centre figure (the oracle); see `figures`."""

from analytics.raw.figures import creator_figures_raw, video_figures_raw

__all__ = ["creator_figures_raw", "video_figures_raw"]
