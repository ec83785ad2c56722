"""Helpers of the asv suite: history runs, shard plans and the checked merge of shard results."""
