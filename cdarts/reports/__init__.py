"""What several search runs add up to, one module per concept: ``records`` (finished runs read back from their folders,
mean ± std, curves), ``markdown`` (report.md/csv and the curve plot: paper Tables 1, 5, 6 and Figures 3, 6),
``correlation`` (alphas against benchmark accuracies: paper Figure 5), ``variants`` (a study's rows) and ``study``
(planning and running the searches of a multi-seed study)."""
