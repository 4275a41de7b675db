"""stepspot: fault-tolerant HPC workflows on AWS Spot capacity."""

__version__ = "0.1.0"
