"""Whole-tomogram prediction: overlap tiling (:mod:`.tiling`) and the predict command (:mod:`.predict`)."""
