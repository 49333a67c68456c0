"""Role pages: one module per role, found through ``ui.pages.base.PAGES_BY_ROLE``."""
