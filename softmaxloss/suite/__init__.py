"""Helpers of the asv suite: the machine name, the asv config, the offline site and its
front-page summary, the torch-version table, the regression gate (results reader, decision,
detection-power study, bisect), the suite over history (commit lists, shard plans, the checked
merge of shard results). Each runs as a ``python -m softmaxloss``
command (``softmaxloss.commands``); asv itself is imported only where it is used.
"""
