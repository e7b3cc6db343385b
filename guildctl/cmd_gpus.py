"""guildctl gpus: the box's GPUs (memory, utilization, which run or foreign process holds
each), CPUs and memory, as the daemon sees them."""

import click

from guildctl import output


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (the GetResources message's fields).")
@click.pass_obj
def gpus(ctx, as_json):
    """Show GPUs, who holds them, and the box's CPUs and memory.

    Each GPU's memory used / total, utilization, and who holds it: a run of ours (`run ID
    (user)`) or a process the daemon didn't start (`foreign pid N (user)`). GPU indices are
    in PCI bus order, as a run's CUDA_VISIBLE_DEVICES counts them.
    """
    resources = ctx.client.get_resources()
    holdings = ctx.client.list_queue().holdings
    if as_json:
        data = output.message_json(resources)
        data["holdings"] = [output.message_json(h) for h in holdings]
        output.print_json(data)
        return
    if resources.gpus:
        for row in output.gpu_rows(resources, holdings):
            click.echo(row)
    else:
        click.echo(f"No GPUs ({resources.reason or resources.backend})")
    click.echo(output.host_line(resources))
