"""Draw the integration's brand icons (HA 2026.3+ serves them from brand/).

Run with the project venv: .venv/bin/python scripts/make_brand_icons.py
"""

from pathlib import Path

from PIL import Image, ImageDraw

BRAND = Path(__file__).resolve().parent.parent / "custom_components/ecoflow_power/brand"
GREEN = (22, 163, 74, 255)
DARK = (15, 23, 42, 255)


def draw(size: int) -> Image.Image:
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    s = size / 256
    # Battery body with a terminal cap, drawn as outlines so it reads at 32 px.
    pen.rounded_rectangle(
        (40 * s, 56 * s, 216 * s, 216 * s), radius=22 * s, outline=DARK, width=round(14 * s)
    )
    pen.rounded_rectangle((96 * s, 32 * s, 160 * s, 58 * s), radius=8 * s, fill=DARK)
    # A lightning bolt: power flowing.
    bolt = [(142, 76), (88, 146), (124, 146), (108, 198), (168, 120), (130, 120), (150, 76)]
    pen.polygon([(x * s, y * s) for x, y in bolt], fill=GREEN)
    return image


def main() -> None:
    BRAND.mkdir(parents=True, exist_ok=True)
    draw(256).save(BRAND / "icon.png", optimize=True)
    draw(512).save(BRAND / "icon@2x.png", optimize=True)


if __name__ == "__main__":
    main()
