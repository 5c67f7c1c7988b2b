"""Driving the stages: the pipeline, where jobs run (this process or Ray), watch mode, recommendations and the analysis of a matrix made anywhere."""
