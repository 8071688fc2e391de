"""List the named scenes (a seed, a policy, a schedule of artifacts and perturbations)."""
HELP = "list the named scenes"


def add_arguments(p):
    pass


def run(args):
    from scenes.catalog import SCENES

    width = max(len(n) for n in SCENES)
    for scene in SCENES.values():
        print(f"{scene.name:<{width}}  policy={scene.policy:<12} {scene.description}")
