"""`python -m modelhost.gpucheck [--tiny] [--json PATH]`: see modelhost.gpucheck.run."""

import os

# Before diffusers or transformers are imported: any reach for a hub fails at once
# instead of downloading. The check builds everything it needs from bundled configs.
os.environ["HF_HUB_OFFLINE"] = "1"

from modelhost.gpucheck.run import main

if __name__ == "__main__":
    main()
