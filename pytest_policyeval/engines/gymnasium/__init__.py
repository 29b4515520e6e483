"""The gymnasium engine: single-agent environments registered with gymnasium, named by id.

settings.py  the task keys this engine owns (env, env_kwargs); no suite names code to import
engine.py    the `Engine`: checks a task, describes it, batches its episodes, knows score bounds
envs.py      making and checking environments, the task's spec (imports gymnasium)
batch.py     lockstep episodes, one environment each (imports gymnasium)
scores.py    return bounds that follow from the classic-control environments' rules
hooks.py     registers the engine
"""
