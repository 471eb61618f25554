"""The experiments behind ``matbackprop train`` / ``eval`` and the demo; one package or module each.

- :mod:`~matbackprop.experiments.msrc_o2p`: DeepO2P region classification on MSRC-v2;
- :mod:`~matbackprop.experiments.bsds_ncuts`: DeepNCuts segmentation on BSDS500;
- :mod:`~matbackprop.experiments.spd_demo`: the 15-second SPD-classifier demo;
- :mod:`~matbackprop.experiments.reporting`: what every experiment's report shares (mean ± sample std
  over seeds, the generated section of a results page, the train-log reader, training curves).
"""
