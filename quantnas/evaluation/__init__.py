"""Scoring SR networks: PSNR/SSIM by the benchmark conventions, evaluation runs."""
