/* placeholder: built by make web-assets */
