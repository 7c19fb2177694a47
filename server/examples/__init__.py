"""Example tools for ``podium demo``: an invoice chain, a vendor-risk fan-out and a support-ticket router.

The tools are small deterministic Python functions (``invoice``, ``vendor_risk``, ``support``) declared in
``tools.toml`` as ``name@1.0.0``. ``server/demo.py`` holds the three step trees the demo runs and their inputs.
"""
