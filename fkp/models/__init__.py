"""Networks: backbones (`backbones`), heads that own their loss and decoding (`heads`), the
codecs that turn points into training targets and back (`codecs`), and losses (`losses`).

May import: torch, fkp.landmarks, fkp.errors, fkp.geometry; never Lightning, Hydra or data code.
"""
