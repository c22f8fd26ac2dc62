import torch

from vidray.train.augment import augment, color_jitter, horizontal_flip, random_resized_crop


def _images(n: int = 4, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_full_scale_crop_is_the_identity() -> None:
    x = _images()
    out = random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_crop_zooms_in_and_keeps_shape() -> None:
    # A horizontal ramp: a crop of half the area spans less than the full range of values.
    ramp = torch.linspace(0, 1, 32).expand(2, 3, 32, 32).contiguous()
    out = random_resized_crop(ramp, scale=(0.25, 0.25), ratio=(1.0, 1.0))
    assert out.shape == ramp.shape
    span = out[:, 0, 0, -1] - out[:, 0, 0, 0]
    assert torch.all(span < 0.6) and torch.all(span > 0.4)


def test_generator_makes_it_reproducible() -> None:
    x = _images()
    a = augment(x, torch.Generator().manual_seed(3))
    b = augment(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, augment(x, torch.Generator().manual_seed(4)))
    assert a.min() >= 0 and a.max() <= 1


def test_flip_mirrors_some_images() -> None:
    x = _images(n=32)
    out = horizontal_flip(x, generator=torch.Generator().manual_seed(0))
    flipped = [bool(torch.equal(o, i.flip(-1))) for o, i in zip(out, x, strict=True)]
    kept = [bool(torch.equal(o, i)) for o, i in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 4 < sum(flipped) < 28
    torch.testing.assert_close(horizontal_flip(x, p=1.0), x.flip(-1))


def test_color_jitter_changes_colours_within_range() -> None:
    x = _images()
    same = color_jitter(x, brightness=0, contrast=0, saturation=0)
    torch.testing.assert_close(same, x)
    out = color_jitter(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.allclose(out, x)
    assert out.min() >= 0 and out.max() <= 1
    # Saturation only scales colour away from gray: a gray image stays gray.
    gray = x[:, :1].expand(-1, 3, -1, -1)
    out = color_jitter(gray, brightness=0, contrast=0, saturation=0.9)
    torch.testing.assert_close(out, gray)
