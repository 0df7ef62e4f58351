"""alexp's Hydra configs, installed as the package `alexp.conf` (searched by Hydra as pkg://alexp.conf)."""
