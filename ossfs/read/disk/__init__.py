"""The local disk cache (``--cache-dir``): blocks of objects kept in files that outlive the mount,
under the in-memory block cache, shared by every mount that names the same directory."""
