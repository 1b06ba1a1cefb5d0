"""A CloudWatch dashboard of execution environments, from the extension's start/stop metrics (EMF).

The extension writes, per execution environment, ``EnvironmentStarted`` (1, at init) and, at SHUTDOWN,
``EnvironmentStopped`` (1), ``EnvironmentLifetime`` (ms) and ``InvocationsServed``, under the dimension sets
``[FunctionName]`` and ``[FunctionName, FunctionVersion]``; with telemetry on, ``InvocationDuration`` carries each
enriched record's duration (from ``platform.report``), up to 100 values a line. The dashboard reads the
``[FunctionName]`` set (all versions together).
"""

from __future__ import annotations

from typing import Mapping, Optional

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .settings import DEFAULT_METRICS_NAMESPACE, check_namespace

# The metric names of extension_src/src/metrics: the contract this dashboard is built on.
ENVIRONMENT_STARTED = "EnvironmentStarted"
ENVIRONMENT_STOPPED = "EnvironmentStopped"
ENVIRONMENT_LIFETIME = "EnvironmentLifetime"
INVOCATIONS_SERVED = "InvocationsServed"
INVOCATION_DURATION = "InvocationDuration"
DIMENSION_FUNCTION_NAME = "FunctionName"

#: Fine enough to see environments come and go in a demo, coarse enough to stay cheap to draw.
PERIOD = Duration.minutes(1)
#: Long enough to see a burst of invocations and the environments it started being reclaimed.
DEFAULT_INTERVAL = Duration.hours(3)
WIDTH = 12  # two graphs per row (the dashboard grid is 24 wide)
HEIGHT = 6

_ABOUT = """\
## Invocation History: execution environments
From the extension's Embedded Metric Format lines (namespace `{namespace}`): one `EnvironmentStarted` per
environment at init, and `EnvironmentStopped`, `EnvironmentLifetime` and `InvocationsServed` at its SHUTDOWN;
`InvocationDuration`, each invocation's duration from the Telemetry API, within a minute or two.
**Live environments** is the running sum of started minus stopped over the time range shown, so it starts at 0: widen
the range to before the environments started. Lambda reclaims idle environments after minutes to hours, so stop
events come late; an environment that crashed before SHUTDOWN never sends one.
"""


class InvocationHistoryDashboard(Construct):
    """A dashboard of live environments, environments started and stopped, invocations per environment, environment
    lifetime and invocation durations, one line per function.

    Example::

        InvocationHistoryDashboard(self, "Environments", functions={"Api": api_function})
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        namespace: str = DEFAULT_METRICS_NAMESPACE,
        dashboard_name: Optional[str] = None,
    ) -> None:
        """
        :param functions: the functions to show, by the label their lines carry. Each must run the extension with
            metrics on.
        :param namespace: the metrics' namespace, as given to ``add_function(metrics_namespace=...)``.
            Default: ``InvocationHistory``, the extension's default.
        :param dashboard_name: Default: a name CloudFormation generates.
        """
        super().__init__(scope, id)
        if not functions:
            raise ValueError(f"InvocationHistoryDashboard '{id}': functions is empty: pass at least one function")
        check_namespace("namespace", namespace)
        self.namespace = namespace

        live, started, stopped, served, lifetime, durations = [], [], [], [], [], []
        for i, (label, fn) in enumerate(functions.items()):
            started_sum = self._metric(fn, ENVIRONMENT_STARTED, "Sum", f"{label} started")
            stopped_sum = self._metric(fn, ENVIRONMENT_STOPPED, "Sum", f"{label} stopped")
            live.append(cloudwatch.MathExpression(
                # FILL: a period without a start or a stop has no data point, and must count as 0, not as a gap.
                # Ids by position: any two labels, whatever their characters, give distinct valid ids.
                expression=f"RUNNING_SUM(FILL(started{i}, 0) - FILL(stopped{i}, 0))",
                using_metrics={f"started{i}": started_sum, f"stopped{i}": stopped_sum},
                label=label,
                period=PERIOD,
            ))
            started.append(started_sum)
            stopped.append(stopped_sum)
            for statistic in ("Average", "Maximum"):
                served.append(self._metric(fn, INVOCATIONS_SERVED, statistic, f"{label} {statistic.lower()}"))
                lifetime.append(self._metric(fn, ENVIRONMENT_LIFETIME, statistic, f"{label} {statistic.lower()}"))
            for statistic in ("p50", "p90", "p99"):
                durations.append(self._metric(fn, INVOCATION_DURATION, statistic, f"{label} {statistic}"))

        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=dashboard_name, default_interval=DEFAULT_INTERVAL
        )
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown=_ABOUT.format(namespace=namespace), width=24,
                                                         height=4))
        self.dashboard.add_widgets(
            self._graph("Live execution environments", live, "environments"),
            self._graph("Environments started and stopped per minute", started + stopped, "environments"),
        )
        self.dashboard.add_widgets(
            self._graph("Invocations served per environment (at its shutdown)", served, "invocations"),
            self._graph("Environment lifetime (ms, at shutdown)", lifetime, "ms"),
        )
        self.dashboard.add_widgets(
            self._graph("Invocation duration p50 / p90 / p99 (ms, from the enriched records)", durations, "ms",
                        width=24),
        )

    def _metric(self, fn: lambda_.IFunction, name: str, statistic: str, label: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self.namespace, metric_name=name, dimensions_map={DIMENSION_FUNCTION_NAME: fn.function_name},
            statistic=statistic, period=PERIOD, label=label,
        )

    @staticmethod
    def _graph(title: str, metrics: list, axis_label: str, width: int = WIDTH) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=title, left=metrics, width=width, height=HEIGHT,
            left_y_axis=cloudwatch.YAxisProps(min=0, label=axis_label, show_units=False),
        )
