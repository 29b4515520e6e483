"""The pettingzoo engine: multi-agent environments of PettingZoo's parallel API (MPE via mpe2, ...).

    settings.py  the task keys it owns (env, env_kwargs, teams, pad_observations); the allow-list
    engine.py    PettingZooEngine: checks a task, describes it (spec), makes its batches
    parallel.py  the only module that imports an environment: layouts and the episode batch
    scripted.py  scripted-mpe://spread and scripted-mpe://tag, the hand-written reference players
    hooks.py     registers the engine and the scripted-mpe:// scheme

Nothing here imports pettingzoo until a task is checked or played (`pip install
'pytest-policyeval[pettingzoo]'` installs what the shipped suite needs).
"""
