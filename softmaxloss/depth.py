"""Gradient difference with increasing depth (the seed's second experiment): see issue."""


def add_parser(sub):  # filled in by the depth experiment
    return None
