"""Developer tools for the platform: `chassis-dev` (devkit.dev) and `chassis-demo` (devkit.demo)."""
