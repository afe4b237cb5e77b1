"""A network: named modules forming a DAG, in creation order, each with its output size.

The trainable parameters of module M are an image in the image list: the image named M in a
network of nn_lib 2023's API, NET_M in a network NET of G'MIC 3.6's (`image_name`); the
network only knows their shapes. It also remembers the API whose commands built it, those
commands (for nn_save) and the plans compiled from it."""

from dataclasses import dataclass, field

from nnpipe.errors import UserError
from nnpipe.images.imagelist import check_size
from nnpipe.nn.layers import count
from nnpipe.numbers import size_text

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
    history: list = field(default_factory=list)  # the loss of each step trained
    validation: list = field(default_factory=list)  # (step in history, validation loss)


class Network:
    def __init__(self, name=DEFAULT_NAME, api="2023"):
        self.name = name
        self.api = api  # the nn_lib API of its commands: what they mean, how nn_print lists it
        self._owned = (None, set())
        self._losses = (None, [])
        self.modules = {}
        self.trainers = {}
        self.order = []  # module and trainer names, as nn_print lists them
        self.latest = None
        self.commands = []
        # the largest magnitude each input was trained on (kept in nnpipe's network files), and
        # whether nn_eval warned about inputs of another range (said once)
        self.input_magnitudes = {}
        self.warned_range = False
        self._plans = {}
        # set while nn_load rebuilds the network: every weight image must come from the file,
        # so a layer without one is an error instead of a new (possibly huge) allocation
        self.weights_from_file = False

    def image_name(self, module):
        """The name of the image holding `module`'s parameters."""
        return f"{self.name}_{module}" if self.api == "3.6" else module

    def resolve(self, name):
        """The module called `name`; '.' is the latest module."""
        if name == ".":
            if self.latest is None:
                raise UserError("'.' names the previous layer, but the network has none yet")
            return self.latest
        if name not in self.modules:
            raise UserError(
                f"no layer named '{name}' in network '{self.name}'"
                + (f" (layers: {', '.join(self.modules)})" if self.modules else "")
            )
        return name

    def check_new(self, name):
        if not name.isidentifier():
            raise UserError(f"'{name}' is not a valid layer name (letters, digits, _)")
        if name in self.modules or name in self.trainers:
            raise UserError(f"network '{self.name}' already has a layer named '{name}'")

    def is_loss(self, name):
        return name in self.modules and self.modules[name].layer.is_loss

    def losses(self):
        """The loss modules, in creation order (asked at every training step: kept while the
        modules stay the same)."""
        key = (tuple(self.modules), tuple(map(id, self.modules.values())))
        if self._losses[0] != key:
            self._losses = (key, [name for name in self.modules if self.is_loss(name)])
        return list(self._losses[1])

    def add(self, name, layer, inputs=()):
        """Add module `name` fed by the modules `inputs` (names already resolved)."""
        self.check_new(name)
        for source in inputs:
            if self.is_loss(source) and not layer.takes_losses:
                raise UserError(
                    f"'{source}' is a loss: a loss feeds no layer (a network's losses"
                    " are trained together, their sum minimized)"
                )
        sizes = [self.modules[i].size for i in inputs]
        module = Module(name, layer, tuple(inputs), tuple(layer.build(sizes)))
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
        names = {self.image_name(trainer) for trainer in self.trainers}
        for module in self.parameter_modules():
            image = self.image_name(module.name)
            names.add(image)
            for trainer in self.trainers.values():
                names.update(image + suffix for suffix in MOMENTS[trainer.optimizer])
        self._owned = (key, names)
        return names

    def remove(self, name, keep_ground_truth=False):
        """Take out a loss (and the ground truth it created, unless kept or read by another
        loss) or a trainer, so that a declaration of the same name replaces it, as in nn_lib;
        the command that declared it goes too, so a saved network replays only the new one."""
        removed = [name]
        if name in self.trainers:
            del self.trainers[name]
        else:
            truth = self.modules.pop(name).inputs[1]
            created = self.modules[truth].layer.options.get("ground_truth_of") == name
            if (
                created
                and not keep_ground_truth
                and not any(truth in m.inputs for m in self.modules.values())
            ):
                del self.modules[truth]
                removed.append(truth)
        self.order = [n for n in self.order if n not in removed]
        if self.latest in removed:
            self.latest = next((n for n in reversed(self.order) if n in self.modules), None)
        self.commands = [c for c in self.commands if _first_argument(c) != name]
        self._plans.clear()

    def parameter_modules(self):
        return [m for m in self.modules.values() if m.parameter_shape(self) is not None]

    def size(self):
        """Number of stored parameters (nn_size)."""
        total = 0
        for module in self.parameter_modules():
            shape = module.parameter_shape(self)
            total += shape[0] * shape[1] * shape[2] * shape[3]
        return total

    def ancestors(self, *targets):
        """The `targets` and every module they depend on, in creation order."""
        needed, stack = set(), list(targets)
        while stack:
            name = stack.pop()
            if name not in needed:
                needed.add(name)
                stack.extend(self.modules[name].inputs)
        return [name for name in self.modules if name in needed]

    def trained_modules(self):
        """What a training step computes: every loss, as in nn_lib, and what they depend on."""
        return self.ancestors(*self.losses())

    def plan(self, *targets):
        """The compiled plan computing `targets`: one layer, or (training) every loss."""
        if targets not in self._plans:
            from nnpipe.nn.engine import Plan  # the engine loads Numba: only when it is needed

            self._plans[targets] = Plan(self, targets)
        return self._plans[targets]

    def training_plan(self):
        if not self.losses():
            raise UserError(f"network '{self.name}' has no loss to train")
        return self.plan(*self.losses())

    def listed(self):
        """Modules and trainers as nn_print lists them: a ground truth a loss created is no
        module in nn_lib (each loss names its own), so it is not listed."""
        return [
            name
            for name in self.order
            if name in self.trainers or not self.modules[name].layer.options.get("ground_truth_of")
        ]

    def describe(self, trainer_state_sizes=None):
        """nn_print's text, line for line nn_lib's: one block per module, then the totals.
        `trainer_state_sizes`: {trainer: values in its state image}, its 'Parameters'."""
        if self.api == "3.6":
            return self.describe_36()
        trainer_state_sizes = trainer_state_sizes or {}
        lines = [" * List of modules:"]
        listed = self.listed()
        for name in listed:
            if name in self.trainers:
                trainer = self.trainers[name]
                lines += [
                    f"    - Module: {name} (type: trainer)",
                    "        * Output size: 0,0,0,0",
                    f"        * Properties: loss={trainer.loss}, learning_rate={trainer.learning_rate},"
                    f" optimizer={trainer.optimizer}, scheduler={trainer.scheduler}",
                ]
                if name in trainer_state_sizes:
                    lines.append(f"        * Parameters: {trainer_state_sizes[name]}")
                continue
            module = self.modules[name]
            lines.append(f"    - Module: {name} (type: {module.layer.kind})")
            shown_inputs = module.inputs[:1] if self.is_loss(name) else module.inputs
            if shown_inputs:
                plural = "s" if len(shown_inputs) > 1 else ""
                lines.append(f"        * Input{plural}: {','.join(shown_inputs)}")
            lines.append(f"        * Output size: {size_text(module.size)}")
            properties = module.layer.properties()
            if properties:
                label = "Properties" if "," in properties else "Property"
                lines.append(f"        * {label}: {properties}")
            shape = module.parameter_shape(self)
            if shape is not None:
                lines.append(f"        * Parameters: {count(shape)}")
        lines += ["", f" * Total: {len(listed)} modules, {self.size()} parameters."]
        return "\n".join(lines)

    def describe_36(self):
        """nn_print's text in G'MIC 3.6's layout: the network's name, one block per layer (its
        inputs with their sizes, parameter count, output size, properties), the totals. Where
        3.6.3 prints oddly nnpipe does not follow: an empty network has 0 layers (not -1), a
        constant second input reads `(2,2,1,4 and 1)` (not `(2,2,1,41)`), and an image named
        like a layer adds no second 'Parameters' line."""
        lines = [f" * Network name: {self.name}"]
        listed = self.listed()
        for name in listed:
            if name in self.trainers:
                trainer = self.trainers[name]
                lines += [
                    f"   - Layer: {name} (type: trainer)",
                    f"       * Input: {trainer.loss} ({size_text(self.modules[trainer.loss].size)})",
                    "       * Output size: 0,0,0,0",
                ]
                describe = getattr(trainer, "properties", None)
                if describe is not None:
                    lines.append(f"       * Properties: {describe()}")
                continue
            module = self.modules[name]
            lines.append(f"   - Layer: {name} (type: {module.layer.kind})")
            inputs = module.inputs[:1] if "ground_truth" in module.layer.options else module.inputs
            shown = [(source, size_text(self.modules[source].size)) for source in inputs]
            constant = module.layer.options.get("constant")
            if constant is not None:  # an input given as a number, size 1
                shown.insert(module.layer.options["constant_position"], (str(constant), "1"))
            if shown:
                names = ",".join(source for source, _ in shown)
                sizes = " and ".join(size for _, size in shown)
                lines.append(f"       * Input{'s' * (',' in names)}: {names} ({sizes})")
            shape = module.parameter_shape(self)
            if shape is not None:
                lines.append(f"       * Parameters: {count(shape)}")
            lines.append(f"       * Output size: {size_text(module.size)}")
            properties = module.layer.properties()
            if properties:
                lines.append(f"       * {'Properties' if ',' in properties else 'Property'}: {properties}")
        return "\n".join(lines + ["", f" * Total: {len(listed)} layers, {self.size()} parameters.", ""])


def owned_image_names(networks):
    names = set()
    for network in networks:
        names |= network.owned_image_names()
    return names


def _first_argument(command):
    """'nn_loss_mse LOSS,OUT,GT' -> 'LOSS'."""
    return command.partition(" ")[2].split(",")[0]
