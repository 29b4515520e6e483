"""Stable-Baselines3 models (`sb3://PATH.zip`), read without Stable-Baselines3 or cloudpickle.

archive.py   the zip, read within bounds: `data` as JSON, `policy.pth` through torch_files
metadata.py  the readable (never the pickled) facts of `data`: policy class, spaces, net_arch
networks.py  torch modules with SB3's parameter names, checked against the state dict
policy.py    the Policy and its batched Actor
loader.py    the `sb3://` scheme
"""
