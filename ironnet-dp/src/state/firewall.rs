//! Firewall rules of interfaces: CreateFirewallRule, GetFirewallRule,
//! DeleteFirewallRule, ListFirewallRules.

use super::DpState;
use crate::error::ServiceError;
use crate::firewall::FirewallRule;

impl DpState {
    /// CreateFirewallRule: adds `rule` to interface `id`. Drop rules are
    /// accepted (and enforced), unlike dpservice.
    pub fn create_firewall_rule(
        &mut self,
        id: &str,
        rule: FirewallRule,
    ) -> Result<(), ServiceError> {
        let iface = self.interfaces.get_mut(id).ok_or(ServiceError::NoVm)?;
        if iface.rules.iter().any(|r| r.id == rule.id) {
            return Err(ServiceError::AlreadyExists);
        }
        iface.rules.push(rule);
        self.firewall_epoch += 1;
        self.changed();
        Ok(())
    }

    /// GetFirewallRule.
    pub fn firewall_rule(&self, id: &str, rule_id: &str) -> Result<&FirewallRule, ServiceError> {
        let iface = self.interfaces.get(id).ok_or(ServiceError::NoVm)?;
        iface
            .rules
            .iter()
            .find(|r| r.id == rule_id)
            .ok_or(ServiceError::NotFound)
    }

    /// DeleteFirewallRule.
    pub fn delete_firewall_rule(&mut self, id: &str, rule_id: &str) -> Result<(), ServiceError> {
        let iface = self.interfaces.get_mut(id).ok_or(ServiceError::NoVm)?;
        let at = iface
            .rules
            .iter()
            .position(|r| r.id == rule_id)
            .ok_or(ServiceError::NotFound)?;
        iface.rules.remove(at);
        self.firewall_epoch += 1;
        self.changed();
        Ok(())
    }

    /// ListFirewallRules: in creation order.
    pub fn firewall_rules(&self, id: &str) -> Result<&[FirewallRule], ServiceError> {
        let iface = self.interfaces.get(id).ok_or(ServiceError::NoVm)?;
        Ok(&iface.rules)
    }
}
