"""What several runs add up to, one module per concept: ``records`` (finished runs read back from their folders,
mean ± std, curves), ``markdown`` (report.md/csv and the curve plot: paper Tables 5, 6 and Figures 3, 6), ``table1``
(paper Table 1's form, with the benchmark's optimum), ``format`` (numbers and tables as text), ``correlation``
(alphas against benchmark accuracies: paper Figure 5), ``variants`` (a study's rows) and ``study`` (planning and
running the searches and multi-trial runs of a multi-seed study)."""
