"""Gates: the statistical decision a task's episodes lead to, and the numbers shown with it.

    design.py     what a gate promises: threshold, direction, score range, margin, error rates, cap
    sequential.py the anytime-valid betting test that adds episodes until it can decide
    intervals.py  fixed-N intervals: Wilson and BCa to describe; Clopper-Pearson and betting,
                  valid for any distribution on the range, where the ci gate decides on them
    guarantee.py  what a verdict promises in words, and what a cap or inconclusive rule takes away
    decide.py     one entry point: a design and a task's per-episode scores -> a `Decision`
    aggregate.py  suite verdicts with multiplicity control and the interquartile-mean headline

Nothing here knows about pytest, engines or policies: scores in, decisions out.
"""
