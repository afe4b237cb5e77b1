"""A network: named modules forming a DAG, in creation order, each with its output size.

The trainable parameters of module M are the image named M in the image list; the network
only knows their shapes. It also remembers the commands that built it (for nn_save) and the
plans compiled from it."""

from dataclasses import dataclass, field

from nnpipe.errors import UserError
from nnpipe.images.imagelist import check_size
from nnpipe.nn.layers import count, size_text

DEFAULT_NAME = "nn"


@dataclass
class Module:
    name: str
    layer: object
    inputs: tuple
    size: tuple

    def parameter_shape(self, network):
        return self.layer.parameter_shape([network.modules[i].size for i in self.inputs])


@dataclass
class Trainer:
    """nn_trainer's settings; its running state is the image named after it."""
    name: str
    loss: str
    learning_rate: float
    optimizer: str
    scheduler: str
    history: list = field(default_factory=list)      # the loss of each step trained
    validation: list = field(default_factory=list)   # (step in history, validation loss)
    # the largest magnitude each feed was trained on, and whether nn_eval warned about inputs
    # of another range (shown once)
    feed_magnitudes: dict = field(default_factory=dict)
    warned_range: bool = False


class Network:
    def __init__(self, name=DEFAULT_NAME):
        self.name = name
        self._owned = (None, set())
        self.modules = {}
        self.trainers = {}
        self.order = []          # module and trainer names, as nn_print lists them
        self.latest = None
        self.commands = []
        self._plans = {}
        # set while nn_load rebuilds the network: every weight image must come from the file,
        # so a layer without one is an error instead of a new (possibly huge) allocation
        self.weights_from_file = False

    def resolve(self, name):
        """The module called `name`; '.' is the latest module."""
        if name == ".":
            if self.latest is None:
                raise UserError("'.' names the previous layer, but the network has none yet")
            return self.latest
        if name not in self.modules:
            raise UserError(f"no layer named '{name}' in network '{self.name}'"
                            + (f" (layers: {', '.join(self.modules)})" if self.modules else ""))
        return name

    def check_new(self, name):
        if not name.isidentifier():
            raise UserError(f"'{name}' is not a valid layer name (letters, digits, _)")
        if name in self.modules or name in self.trainers:
            raise UserError(f"network '{self.name}' already has a layer named '{name}'")

    def add(self, name, layer, inputs=()):
        """Add module `name` fed by the modules `inputs` (names already resolved)."""
        self.check_new(name)
        sizes = [self.modules[i].size for i in inputs]
        module = Module(name, layer, tuple(inputs), tuple(layer.output_size(sizes)))
        check_size(module.size, "the layer's output")
        parameters = module.parameter_shape(self)
        if parameters is not None:
            check_size(parameters[::-1], "the layer's weights image")
        self.modules[name] = module
        self.order.append(name)
        self.latest = name
        self._plans.clear()
        return module

    def add_trainer(self, trainer):
        self.check_new(trainer.name)
        self.trainers[trainer.name] = trainer
        self.order.append(trainer.name)

    def owned_image_names(self):
        """The images this network keeps in the list: parameters, their optimizer moments and
        the trainers' states."""
        from nnpipe.nn.optimizers import MOMENTS
        key = (tuple(self.modules), tuple((t.name, t.optimizer) for t in self.trainers.values()))
        if self._owned[0] == key:  # asked before every command: kept while nothing changes
            return self._owned[1]
        names = set(self.trainers)
        for module in self.parameter_modules():
            names.add(module.name)
            for trainer in self.trainers.values():
                names.update(module.name + suffix for suffix in MOMENTS[trainer.optimizer])
        self._owned = (key, names)
        return names

    def parameter_modules(self):
        return [m for m in self.modules.values() if m.parameter_shape(self) is not None]

    def size(self):
        """Number of stored parameters (nn_size)."""
        total = 0
        for module in self.parameter_modules():
            shape = module.parameter_shape(self)
            total += shape[0] * shape[1] * shape[2] * shape[3]
        return total

    def ancestors(self, target):
        """`target` and every module it depends on, in creation order."""
        needed, stack = set(), [target]
        while stack:
            name = stack.pop()
            if name not in needed:
                needed.add(name)
                stack.extend(self.modules[name].inputs)
        return [name for name in self.modules if name in needed]

    def plan(self, target):
        if target not in self._plans:
            from nnpipe.nn.engine import Plan  # the engine loads Numba: only when it is needed
            self._plans[target] = Plan(self, target)
        return self._plans[target]

    def describe(self):
        """nn_print's text: one block per module, then the totals."""
        lines = [f" * Network '{self.name}'. List of modules:"]
        for name in self.order:
            if name in self.trainers:
                trainer = self.trainers[name]
                lines += [f"    - Module: {name} (type: trainer)",
                          "        * Output size: 0,0,0,0",
                          f"        * Properties: loss={trainer.loss}, learning_rate={trainer.learning_rate:g},"
                          f" optimizer={trainer.optimizer}, scheduler={trainer.scheduler}"]
                continue
            module = self.modules[name]
            lines.append(f"    - Module: {name} (type: {module.layer.kind})")
            if module.inputs:
                plural = "s" if len(module.inputs) > 1 else ""
                lines.append(f"        * Input{plural}: {','.join(module.inputs)}")
            lines.append(f"        * Output size: {size_text(module.size)}")
            properties = module.layer.properties()
            if properties:
                label = "Properties" if "," in properties else "Property"
                lines.append(f"        * {label}: {properties}")
            shape = module.parameter_shape(self)
            if shape is not None:
                lines.append(f"        * Parameters: {count(shape)}")
        lines.append("")
        lines.append(f" * Total: {len(self.order)} modules, {self.size()} parameters.")
        return "\n".join(lines)


def owned_image_names(networks):
    names = set()
    for network in networks:
        names |= network.owned_image_names()
    return names
