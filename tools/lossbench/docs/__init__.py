"""The documentation's measured figures: records, the blocks rendered from them, the checks.

* ``blocks``: the ``<!-- measured:NAME ... -->`` ... ``<!-- /measured -->`` markers of a page;
* ``renderers``: what each NAME renders from the records in ``docs/measurements/``;
* ``prose``: the figures, dates, issue numbers and machine paths the text outside the blocks
  may not hold;
* ``pages``: the pages, rendering them and checking them (``python -m lossbench docs``);
* ``measure``: the measuring commands behind every record, re-run in one go;
* ``imported``: records imported from a table or lines committed in an earlier page.
"""
