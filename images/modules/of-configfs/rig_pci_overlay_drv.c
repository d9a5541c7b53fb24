// SPDX-License-Identifier: GPL-2.0
/*
 * rig_pci_overlay: a PCI driver that does what drivers/misc/lan966x_pci.c does with its device
 * tree overlay, for QEMU's pci-testdev (1b36:0005), so rig can drive seed 000's PCI path:
 *
 *   probe:  of_overlay_fdt_apply() of an embedded overlay (a fixed-clock provider and a consumer
 *           of it) onto the node PCI_DYNAMIC_OF_NODES made for the device, then
 *           of_platform_default_populate() of that node (fw_devlink links consumer to provider);
 *   remove: of_platform_depopulate(), then of_overlay_remove(); the PCI core then removes the
 *           device's own node (of_pci_remove_node() -> of_changeset_revert() ->
 *           of_changeset_destroy()).
 *
 * Both destroys free nodes the device links' deferred release may still hold: the window that
 * device_link_wait_removal() in of_changeset_destroy() closes ("OF: ERROR: memory leak, expected
 * refcount 1 instead of 2" without it).
 *
 * It binds only after `modprobe rig_pci_overlay` (rig's init does not load it), and only to a
 * device with a device tree node: without one it refuses the probe, as lan966x_pci does.
 */
#include <linux/module.h>
#include <linux/of.h>
#include <linux/of_platform.h>
#include <linux/pci.h>
#include <linux/slab.h>

/* The embedded overlay, made by the kernel's cmd_wrap_S_dtb from rig_pci_overlay.dtso. */
extern char __dtbo_rig_pci_overlay_begin[];
extern char __dtbo_rig_pci_overlay_end[];

struct rig_pci_overlay {
	struct device *dev;
	int ovcs_id;
};

static int rig_pci_overlay_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	u32 size = __dtbo_rig_pci_overlay_end - __dtbo_rig_pci_overlay_begin;
	struct device *dev = &pdev->dev;
	struct rig_pci_overlay *data;
	int ret;

	if (!dev_of_node(dev))
		return dev_err_probe(dev, -EINVAL,
				     "no device tree node (CONFIG_PCI_DYNAMIC_OF_NODES)\n");

	data = devm_kzalloc(dev, sizeof(*data), GFP_KERNEL);
	if (!data)
		return -ENOMEM;
	data->dev = dev;
	pci_set_drvdata(pdev, data);

	ret = of_overlay_fdt_apply(__dtbo_rig_pci_overlay_begin, size, &data->ovcs_id,
				   dev_of_node(dev));
	if (ret)
		return dev_err_probe(dev, ret, "cannot apply the overlay\n");

	ret = of_platform_default_populate(dev_of_node(dev), NULL, dev);
	if (ret) {
		of_platform_depopulate(dev);
		of_overlay_remove(&data->ovcs_id);
		return dev_err_probe(dev, ret, "cannot populate %pOF\n", dev_of_node(dev));
	}
	dev_info(dev, "rig_pci_overlay: overlay %d applied and populated on %pOF\n",
		 data->ovcs_id, dev_of_node(dev));
	return 0;
}

static void rig_pci_overlay_remove(struct pci_dev *pdev)
{
	struct rig_pci_overlay *data = pci_get_drvdata(pdev);
	int ret;

	of_platform_depopulate(data->dev);
	ret = of_overlay_remove(&data->ovcs_id);
	if (ret)
		dev_err(data->dev, "rig_pci_overlay: cannot remove the overlay: %d\n", ret);
	else
		dev_info(data->dev, "rig_pci_overlay: overlay removed\n");
}

static const struct pci_device_id rig_pci_overlay_ids[] = {
	{ PCI_DEVICE(PCI_VENDOR_ID_REDHAT, 0x0005) },	/* QEMU pci-testdev */
	{ }
};
MODULE_DEVICE_TABLE(pci, rig_pci_overlay_ids);

static struct pci_driver rig_pci_overlay_driver = {
	.name = "rig_pci_overlay",
	.id_table = rig_pci_overlay_ids,
	.probe = rig_pci_overlay_probe,
	.remove = rig_pci_overlay_remove,
};
module_pci_driver(rig_pci_overlay_driver);

MODULE_DESCRIPTION("rig: a device tree overlay on a PCI device's node, as lan966x_pci applies one");
MODULE_LICENSE("GPL");
