"""tfobj.rendering: differentiable sprite renderers in pure TensorFlow: SPAIR's Algorithm 1 (`render_sprites`) and
SILOT's softmax over depth (`render_sprites_softmax`), sharing one enumeration of (object, pixel) pairs."""
from tfobj.rendering.render_sprites import RenderSprites, render_sprites, render_sprites_softmax

__all__ = ["RenderSprites", "render_sprites", "render_sprites_softmax"]
