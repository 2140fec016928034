"""Photos as files: decoding (one loader per format), EXIF, listing and companions, XMP
sidecars, and file operations that never lose a photo.  No torch, no Qt."""
