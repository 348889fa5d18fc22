"""What a user looks at instead of a CSV: cell drawings of a genotype (``cells``), a run's training curves and its
architecture weights (``training``), written atomically to .png, .svg or .pdf (``files``)."""
from cdarts.plotting.cells import cell_graphs, plot_genotype, to_dot
from cdarts.plotting.files import FORMATS, plot_format, save_figure
from cdarts.plotting.training import (
    alpha_edges,
    plot_alphas,
    plot_retrain_curves,
    plot_search_curves,
    write_search_plots,
)

__all__ = ["FORMATS", "alpha_edges", "cell_graphs", "plot_alphas", "plot_format", "plot_genotype",
           "plot_retrain_curves", "plot_search_curves", "save_figure", "to_dot", "write_search_plots"]
