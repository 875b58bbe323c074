"""gradvac_ds: Gradient Vaccine (Wang et al., ICLR 2021) inside DeepSpeed ZeRO."""

__version__ = "0.1.0"
