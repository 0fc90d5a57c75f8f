"""The harness's version and the plugin contract it speaks: the bottom of the import graph, so
every layer may read them (``harness/__init__.py`` re-exports both)."""

__version__ = "0.1.0"

#: The plugin contract this harness speaks, "major.minor". A plugin may declare ``HARNESS_API``
#: in its module (an int major, or a "major.minor" string); another major version, or a newer
#: minor one, is refused with a clear message instead of failing mid-training. Minor versions
#: only add: 1.1 added the validation split (``TaskData.val_inputs``/``val_targets``); 1.2
#: added unscored class targets (``IGNORE_INDEX``), task ``tags``, ``TaskShape.length``, and
#: model options (``Model(options=..., limits=...)``).
PLUGIN_API_VERSION = "1.2"
