"""tfobj.rendering: SPAIR's differentiable sprite renderer (supplement Algorithm 1) in pure TensorFlow."""
from tfobj.rendering.render_sprites import RenderSprites, render_sprites

__all__ = ["RenderSprites", "render_sprites"]
