"""The statistics behind the analysis stage: decomposition, normalisation, how many components, stability, per-sample outcomes, tests, trait associations and prediction."""
