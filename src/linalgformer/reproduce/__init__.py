"""Paper reproductions: ``linalgformer reproduce NAME`` runs a preset end to end.

``presets`` reads ``configs/NAME.yaml``; ``driver`` runs the steps every reproduction shares (load
the preset, the output folder, the device, timing, the title, the "paper:" and machine lines, the
saved result) around one family driver (``charton``, ``spectral``, ``newton``: train or build the
models, evaluate, tabulate, plot); ``steps`` holds the pieces those drivers share; ``results``
gathers many saved results into one table. Nothing in the package below this floor imports it.
"""
