"""Face sharpness inside a burst (photocull.cull.overall.FACE_SOFTER): how often a clean frame of
a generated burst (shifted 0-2 %, re-encoded q92) falls below a share of the best frame's face
sharpness, and how often a copy blurred by 1.5 px does.  Needs ../shared/data.

    .venv/bin/python bench/face_bursts.py
"""
import io, glob, numpy as np
from PIL import Image, ImageFilter
from photocull.analysis.faces import find_faces
files = sorted(glob.glob('/work/shared/data/pristine/kodak24/*.png'))+sorted(glob.glob('/work/shared/data/pristine/pixabay640/*.jpg'))
rng = np.random.default_rng(0)
ratios, soft_ratios = [], []
n=0
for f in files:
    im = Image.open(f).convert('RGB')
    r0 = find_faces(im)
    if not r0.count or r0.sharpness is None: continue
    n+=1
    w,h = im.size
    vals=[r0.sharpness]
    for k in range(3):
        dx,dy = rng.integers(-int(0.02*w), int(0.02*w)+1), rng.integers(-int(0.02*h), int(0.02*h)+1)
        v = im.transform(im.size, Image.Transform.AFFINE, (1,0,dx,0,1,dy), resample=Image.Resampling.BILINEAR)
        b=io.BytesIO(); v.save(b,'JPEG',quality=92); b.seek(0)
        r=find_faces(Image.open(b).convert('RGB'))
        if r.count and r.sharpness is not None: vals.append(r.sharpness)
    best=max(vals); ratios += [v/best for v in vals]
    bl = im.filter(ImageFilter.GaussianBlur(1.5))
    r=find_faces(bl)
    if r.count and r.sharpness is not None: soft_ratios.append(r.sharpness/best)
ratios=np.array(ratios); soft=np.array(soft_ratios)
print('photos with faces', n, 'frames', len(ratios))
for t in (0.6,0.7,0.8): print(t, 'clean frames flagged %.1f%%' % ((ratios<t).mean()*100), 'blurred(1.5px) flagged %.0f%%' % ((soft<t).mean()*100))
