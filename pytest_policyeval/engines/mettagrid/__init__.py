"""The mettagrid engine: Metta's grid games (navigation, laser_tag) on ASCII maps.

settings.py    the task keys this engine owns (map, game, observation window, ...)
engine.py      the `Engine`: checks a task, describes it, batches its episodes
simulation.py  the only module that imports mettagrid: configs and lockstep episode batches
gridmap.py     ASCII maps          scores.py   each game's score bounds
replay.py      replays to films     scripted.py  scripted:// reference players
hooks.py       registers the engine and the scripted:// scheme
"""
