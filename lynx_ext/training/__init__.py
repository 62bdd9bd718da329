"""Training the Lynx adapters with Lightning: data, packing, the module, recipes (``diffsynth-ext fit``)."""
