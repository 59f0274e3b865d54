"""The job side: what runs inside a batch job, apart from the reconstruction itself.

:mod:`farmtools.job.exitcodes` (the exit codes a job's program ends with, and how the manager
reads them) and :mod:`farmtools.job.readcheck` (the read-only check job).  Kept out of
:mod:`farmtools.batch`, which only submits and watches jobs: the batch layer then needs neither
the raw-data reader nor the reconstruction, and the reconstruction does not import the batch layer.
"""
