// SPDX-License-Identifier: GPL-2.0
/*
 * rig_of_configfs: apply and remove device tree overlays through configfs.
 *
 *   mkdir /sys/kernel/config/device-tree/overlays/NAME
 *   cat foo.dtbo > /sys/kernel/config/device-tree/overlays/NAME/dtbo   # apply
 *   cat /sys/kernel/config/device-tree/overlays/NAME/status            # applied | unapplied
 *   echo 1 > /sys/kernel/config/device-tree/overlays/NAME/remove       # of_overlay_remove()
 *   rmdir /sys/kernel/config/device-tree/overlays/NAME
 *
 * `dtbo` takes the flattened overlay in one or more write() calls (configfs hands a store
 * at most one page per call); the overlay is applied by the write that completes the blob,
 * as announced by the FDT header's totalsize. Unlike a configfs binary attribute, whose
 * content only reaches the driver at close() where errors are dropped, this reports a bad
 * blob or a failed apply to the writer: bad header -> -EINVAL, too large -> -EFBIG, a
 * failed apply -> the error of of_overlay_fdt_apply() (-EINVAL for garbage).
 *
 * `remove` takes the overlay out with of_overlay_remove() and returns its error to the writer
 * (-EBUSY when it is not the topmost overlay, or whatever reverting the changeset reported);
 * the overlay then stays applied. rmdir cannot fail once configfs calls drop_item (it returns
 * void), so a writer that needs the outcome writes `remove` first; rmdir of an overlay still
 * applied removes it and can only log a failure.
 *
 * `base` (optional, before `dtbo`): the full path of a live node that the overlay's
 * `target-path`s are relative to (of_overlay_fdt_apply()'s target base, 6.6+), e.g. the node
 * PCI_DYNAMIC_OF_NODES made for a PCI device: `target-path = "/"` then means that node.
 *
 * Builds against Linux 5.10 and later (of_overlay_fdt_apply() gained its base argument in 6.6).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/configfs.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/of.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/version.h>

#define RIG_FDT_MAGIC		0xd00dfeedU
#define RIG_FDT_HEADER_SIZE	40U	/* struct fdt_header, v17 */
#define RIG_DTBO_MAX		(1U << 20)
#define RIG_BASE_MAX		256

struct rig_overlay {
	struct config_item item;
	struct mutex lock;	/* protects everything below */
	int ovcs_id;		/* > 0 while applied */
	u8 *buf;		/* blob being received */
	u32 len;
	u32 total;
	char base[RIG_BASE_MAX];	/* target base path; empty: the root */
};

static inline struct rig_overlay *to_rig_overlay(struct config_item *item)
{
	return container_of(item, struct rig_overlay, item);
}

/* Big-endian u32 at @p, any alignment (asm/unaligned.h moved in 6.12). */
static u32 rig_be32_at(const char *p)
{
	__be32 v;

	memcpy(&v, p, sizeof(v));
	return be32_to_cpu(v);
}

static void rig_overlay_reset_pending(struct rig_overlay *ov)
{
	kvfree(ov->buf);
	ov->buf = NULL;
	ov->len = 0;
	ov->total = 0;
}

static int rig_overlay_apply(struct rig_overlay *ov)
{
	int id = 0;
	int ret;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
	struct device_node *base = NULL;

	if (ov->base[0]) {
		base = of_find_node_by_path(ov->base);
		if (!base) {
			pr_err("%s: base node %s not found\n", config_item_name(&ov->item), ov->base);
			return -ENODEV;
		}
	}
	ret = of_overlay_fdt_apply(ov->buf, ov->total, &id, base);
	of_node_put(base);
#else
	if (ov->base[0])
		return -EOPNOTSUPP;
	ret = of_overlay_fdt_apply(ov->buf, ov->total, &id);
#endif
	if (ret) {
		pr_err("%s: applying overlay failed: %d\n",
		       config_item_name(&ov->item), ret);
		/* A changeset may be left partially applied: take it back out. */
		if (id > 0 && of_overlay_remove(&id))
			pr_err("%s: removing the failed overlay failed too\n",
			       config_item_name(&ov->item));
		return ret;
	}
	ov->ovcs_id = id;
	pr_info("%s: overlay applied (changeset %d)\n", config_item_name(&ov->item), id);
	return 0;
}

static ssize_t rig_overlay_dtbo_store(struct config_item *item, const char *page, size_t count)
{
	struct rig_overlay *ov = to_rig_overlay(item);
	ssize_t ret = count;

	mutex_lock(&ov->lock);
	if (ov->ovcs_id > 0) {
		ret = -EBUSY;
		goto out;
	}
	if (!ov->buf) {
		u32 total;

		if (count < 8 || rig_be32_at(page) != RIG_FDT_MAGIC) {
			ret = -EINVAL;
			goto out;
		}
		total = rig_be32_at(page + 4);
		if (total < RIG_FDT_HEADER_SIZE) {
			ret = -EINVAL;
			goto out;
		}
		if (total > RIG_DTBO_MAX) {
			ret = -EFBIG;
			goto out;
		}
		ov->buf = kvmalloc(total, GFP_KERNEL);
		if (!ov->buf) {
			ret = -ENOMEM;
			goto out;
		}
		ov->total = total;
		ov->len = 0;
	}
	if (count > ov->total - ov->len) {
		/* More bytes than the header announced: not an FDT. */
		rig_overlay_reset_pending(ov);
		ret = -EINVAL;
		goto out;
	}
	memcpy(ov->buf + ov->len, page, count);
	ov->len += count;
	if (ov->len == ov->total) {
		int err = rig_overlay_apply(ov);

		rig_overlay_reset_pending(ov);
		if (err)
			ret = err;
	}
out:
	mutex_unlock(&ov->lock);
	return ret;
}

static ssize_t rig_overlay_status_show(struct config_item *item, char *page)
{
	struct rig_overlay *ov = to_rig_overlay(item);
	bool applied;

	mutex_lock(&ov->lock);
	applied = ov->ovcs_id > 0;
	mutex_unlock(&ov->lock);
	return sprintf(page, "%s\n", applied ? "applied" : "unapplied");
}

/* Removes the applied overlay; the writer gets of_overlay_remove()'s error. */
static ssize_t rig_overlay_remove_store(struct config_item *item, const char *page, size_t count)
{
	struct rig_overlay *ov = to_rig_overlay(item);
	ssize_t ret = count;

	mutex_lock(&ov->lock);
	if (ov->ovcs_id <= 0) {
		ret = -ENOENT;
	} else {
		int id = ov->ovcs_id;
		int err = of_overlay_remove(&id);

		if (err) {
			pr_err("%s: removing overlay (changeset %d) failed: %d\n",
			       config_item_name(item), ov->ovcs_id, err);
			ret = err;
		} else {
			pr_info("%s: overlay removed\n", config_item_name(item));
			ov->ovcs_id = 0;
		}
	}
	mutex_unlock(&ov->lock);
	return ret;
}

static ssize_t rig_overlay_base_show(struct config_item *item, char *page)
{
	struct rig_overlay *ov = to_rig_overlay(item);
	ssize_t n;

	mutex_lock(&ov->lock);
	n = sprintf(page, "%s\n", ov->base);
	mutex_unlock(&ov->lock);
	return n;
}

static ssize_t rig_overlay_base_store(struct config_item *item, const char *page, size_t count)
{
	struct rig_overlay *ov = to_rig_overlay(item);
	size_t len = count;
	ssize_t ret = count;

	while (len && (page[len - 1] == '\n' || page[len - 1] == ' '))
		len--;
	if (len >= RIG_BASE_MAX || (len && page[0] != '/'))
		return -EINVAL;
	mutex_lock(&ov->lock);
	if (ov->ovcs_id > 0 || ov->buf) {
		ret = -EBUSY;
	} else {
		memcpy(ov->base, page, len);
		ov->base[len] = '\0';
	}
	mutex_unlock(&ov->lock);
	return ret;
}

CONFIGFS_ATTR_WO(rig_overlay_, dtbo);
CONFIGFS_ATTR_RO(rig_overlay_, status);
CONFIGFS_ATTR_WO(rig_overlay_, remove);
CONFIGFS_ATTR(rig_overlay_, base);

static struct configfs_attribute *rig_overlay_attrs[] = {
	&rig_overlay_attr_dtbo,
	&rig_overlay_attr_status,
	&rig_overlay_attr_remove,
	&rig_overlay_attr_base,
	NULL,
};

static void rig_overlay_release(struct config_item *item)
{
	struct rig_overlay *ov = to_rig_overlay(item);

	rig_overlay_reset_pending(ov);
	kfree(ov);
}

static struct configfs_item_operations rig_overlay_item_ops = {
	.release = rig_overlay_release,
};

static const struct config_item_type rig_overlay_type = {
	.ct_item_ops = &rig_overlay_item_ops,
	.ct_attrs = rig_overlay_attrs,
	.ct_owner = THIS_MODULE,
};

static struct config_item *rig_overlays_make_item(struct config_group *group, const char *name)
{
	struct rig_overlay *ov = kzalloc(sizeof(*ov), GFP_KERNEL);

	if (!ov)
		return ERR_PTR(-ENOMEM);
	mutex_init(&ov->lock);
	config_item_init_type_name(&ov->item, name, &rig_overlay_type);
	return &ov->item;
}

/* rmdir: remove the overlay before the item goes away (a failure can only be logged). */
static void rig_overlays_drop_item(struct config_group *group, struct config_item *item)
{
	struct rig_overlay *ov = to_rig_overlay(item);

	mutex_lock(&ov->lock);
	if (ov->ovcs_id > 0) {
		int id = ov->ovcs_id;
		int ret = of_overlay_remove(&id);

		if (ret)
			pr_err("%s: removing overlay (changeset %d) failed: %d\n",
			       config_item_name(item), ov->ovcs_id, ret);
		else
			pr_info("%s: overlay removed\n", config_item_name(item));
		ov->ovcs_id = 0;
	}
	mutex_unlock(&ov->lock);
	config_item_put(item);
}

static struct configfs_group_operations rig_overlays_group_ops = {
	.make_item = rig_overlays_make_item,
	.drop_item = rig_overlays_drop_item,
};

static const struct config_item_type rig_overlays_type = {
	.ct_group_ops = &rig_overlays_group_ops,
	.ct_owner = THIS_MODULE,
};

static const struct config_item_type rig_dt_type = {
	.ct_owner = THIS_MODULE,
};

static struct config_group rig_overlays_group;

static struct configfs_subsystem rig_dt_subsys = {
	.su_group = {
		.cg_item = {
			.ci_namebuf = "device-tree",
			.ci_type = &rig_dt_type,
		},
	},
};

static int __init rig_of_configfs_init(void)
{
	int ret;

	config_group_init(&rig_dt_subsys.su_group);
	mutex_init(&rig_dt_subsys.su_mutex);
	config_group_init_type_name(&rig_overlays_group, "overlays", &rig_overlays_type);
	configfs_add_default_group(&rig_overlays_group, &rig_dt_subsys.su_group);
	ret = configfs_register_subsystem(&rig_dt_subsys);
	if (ret)
		pr_err("cannot register configfs subsystem: %d\n", ret);
	return ret;
}

static void __exit rig_of_configfs_exit(void)
{
	configfs_unregister_subsystem(&rig_dt_subsys);
}

module_init(rig_of_configfs_init);
module_exit(rig_of_configfs_exit);

MODULE_AUTHOR("rig");
MODULE_DESCRIPTION("Apply and remove device tree overlays through configfs");
MODULE_LICENSE("GPL");
