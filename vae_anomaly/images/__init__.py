"""The image jobs: folders of PNG/JPEG files (or .npy/.npz arrays) in, scores and heat maps out.

config    settings (``pipelines/images.toml``) and the recorded image transform
loader    inputs -> decoded, transformed images through tf.data; rejects with reasons
heatmaps  per-pixel anomaly maps as PNG, the image beside its map
jobs      ``fit_images`` and ``score_images``
labels    a scored output against labelled defects (``score-images --labels``)
samples   the generated sample set of ``sample_data/parts``
"""
