"""The stages of a run, in order: plan -> finetune -> evaluate -> matrix -> traits -> analyse -> report.

One module per stage; each reads what the stage before it left (in the cache, or the objects it
returned) and exposes public functions only. :mod:`harness.execution.pipeline` calls them in order.
"""
