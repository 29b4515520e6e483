"""The Ray backend (`--eval-ray`): every (policy, task) evaluation runs as a Ray task.

pytest on the calling machine collects the items as always; `scheduler.py` replaces its run loop,
submits each task item's evaluation to the cluster and runs the items through pytest's own
protocol as their results arrive, so reports, files and publishing are unchanged. `job.py` is
what runs on a Ray worker; `shipping.py` takes policy checkpoints and a task's files to the nodes
once each; `connect.py` reaches the cluster or says why not. Ray is imported only once a run asks
for it.
"""
