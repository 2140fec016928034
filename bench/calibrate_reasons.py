"""Per-family reason thresholds: severities of clean held-out photos and of degraded versions.

    python bench/calibrate_reasons.py
"""
import numpy as np, random
from pathlib import Path
from PIL import Image
from photocull.model import nima
from photocull.model import spec as modelspec
from photocull.model import checkpoint
from photocull.media.loaders import open_image
import torch
torch.set_num_threads(1)
lm = checkpoint.load_default_model()
cfg = lm.cfg
fams = list(cfg.families)
files = sorted(Path('/work/shared/data/pristine/bsds500/test').glob('*.jpg'))
random.seed(0); files = random.sample(files, 60)
def sev_of(ims):
    x = nima.preprocess([modelspec.to_model_input(im, cfg) for im in ims], cfg)
    p, s, f = nima.predict(lm.model, x)
    return s
clean, noisy, blur, dark, jpg = [], [], [], [], []
for i in range(0, len(files), 12):
    ims = [open_image(f, 448) for f in files[i:i+12]]
    clean.append(sev_of(ims))
    arrs = [np.asarray(im, dtype=np.float32) for im in ims]
    rng = np.random.default_rng(i)
    noisy.append(sev_of([Image.fromarray((a + rng.normal(0, 20, a.shape)).clip(0,255).astype('uint8')) for a in arrs]))
    from PIL import ImageFilter
    blur.append(sev_of([im.filter(ImageFilter.GaussianBlur(3)) for im in ims]))
    dark.append(sev_of([Image.fromarray((a*0.2).astype('uint8')) for a in arrs]))
    import io
    def crush(im):
        b = io.BytesIO(); im.save(b, 'JPEG', quality=5); b.seek(0); return Image.open(b).convert('RGB')
    jpg.append(sev_of([crush(im) for im in ims]))
C = np.concatenate(clean)
for name, D in [('noisy', noisy), ('blur', blur), ('dark', dark), ('jpeg', jpg)]:
    D = np.concatenate(D)
    print(name, ' '.join(f"{f}:{np.median(D[:,k]):.2f}" for k, f in enumerate(fams)))
print('clean q95', ' '.join(f"{f}:{np.quantile(C[:,k],0.95):.2f}" for k, f in enumerate(fams)))
print('clean med', ' '.join(f"{f}:{np.median(C[:,k]):.2f}" for k, f in enumerate(fams)))
